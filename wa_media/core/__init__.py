"""Pure values and decisions: no I/O, no environment, none of the service libraries."""
