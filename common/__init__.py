"""What policies, audit and service share: the vocabulary (:mod:`common.vocabulary`),
canonical JSON, AES-256-GCM and random bytes drawn in blocks.

The layering: ``common`` imports nothing of ours; ``policies`` imports only ``common``;
``audit`` imports only ``common``; ``service`` may import all three. A helper that both
the policy masking and the audit log need lives here, so neither reaches into the
other (tests/common/test_layering.py holds every package to it).
"""
