"""The library `web`, the worker and `wa-media` share, in layers (each imports only those below):

    cli            wa-media, the operator's command line
    providers      the WhatsApp providers' clients, and the registry that builds them
    stores         S3, the records in Redis, the shared call gate, the broker
    config         settings read from the environment and the accounts file
    observability  logs and metrics
    core           pure: values, decisions, the error tree; no I/O, no environment

Nothing here runs at import: the processes (`webhook`, `worker`) build what they need.
"""
