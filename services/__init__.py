"""The four MRM services; each is its own package and process."""
