from osago.cli import main

raise SystemExit(main())
