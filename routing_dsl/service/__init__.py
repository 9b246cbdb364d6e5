"""The service: routing decisions over HTTP (FastAPI), from one live state kept in memory and
the same plans and run store the batch side uses. ``app`` builds the application; ``state``
owns the live snapshot and the quotes computed against it; ``console`` serves the web console;
``launch`` starts `routing serve` as a real process (for tests and for `routing bench
--service`, whose load generator lives in ``bench.loadgen``)."""
