"""vaxhub: interoperability gateway and health-record hub for national vaccination programmes."""

__version__ = "0.1.0"
