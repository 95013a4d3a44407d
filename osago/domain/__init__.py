"""The OSAGO domain: the Bank of Russia tariff, the request schema, the stub."""
