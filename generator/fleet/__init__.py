"""fleet.yaml: loading with source marks, schema and semantic validation, typed model."""
