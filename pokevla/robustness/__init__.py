"""LIBERO-Plus-style robustness evaluation: manifest building, previews, manifest-driven episodes."""
