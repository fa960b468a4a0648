"""The ``fhirqa`` recipe: QA over a patient's FHIR R4 record (resource selection F1, answer METEOR)."""
