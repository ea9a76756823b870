"""The real stack on one machine (Redis, SeaweedFS, the Graph API simulator, `web`, `worker`),
started and stopped by the tests, the demo and the benchmarks."""
