"""The health-book app's parts of the hub: reactions citizens report after a
dose (FHIR AdverseEvent) and reminders of the next dose due."""
