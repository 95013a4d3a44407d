"""The roles: each is ``async def run(deps, *, task_status)``, started with ``nursery.start``."""
