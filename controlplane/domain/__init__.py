"""Pydantic models and value types of govcloud: the nouns every other layer speaks.

No I/O here: no database, HTTP, libvirt or Ansible imports (enforced by import-linter).
"""
