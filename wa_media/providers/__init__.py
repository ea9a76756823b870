"""The WhatsApp providers: Meta's Cloud API, 360dialog and the On-Premises API."""
