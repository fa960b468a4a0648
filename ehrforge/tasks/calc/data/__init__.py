"""Derived real-note fixtures for calc (see NOTICE.md: CC BY-SA 4.0, never trained on)."""
