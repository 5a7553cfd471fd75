"""featstore: corpora, audio, models, and the hidden-state cache.

Corpora and audio (``featstore.corpora``, ``featstore.audio``), manifests
(``featstore.manifest``), folds (``featstore.splits``), the demo corpus
(``featstore.synth``), SSL models (``featstore.models``), the exact batched forward
pass (``featstore.forward``), extraction and the HDF5 cache (``featstore.extract``,
``featstore.cache``).
"""

__version__ = "0.1.0"
