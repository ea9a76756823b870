"""The library `web`, the worker and `wa-media` share, in layers (each imports only those below):

    cli            wa-media, the operator's command line
    providers      one plugin module per WhatsApp provider (its client, error codes, how its
                   accounts are read), the registry of them, and their shared machinery
    stores         S3, the records in Redis, the shared call gate, the broker
    config         settings read from the environment and the accounts file
    observability  logs and metrics
    core           pure: values, decisions, the error tree; no I/O, no environment

Nothing here runs at import: the processes (`webhook`, `worker`) build what they need.
"""
