"""Small utilities shared by every sub-package: user-facing errors, atomic file writes."""
