"""probes: layer-wise probes over the feature cache, metrics, settings, listening tests,
speech emotion diarization and reports."""
