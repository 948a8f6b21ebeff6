"""The MRM command line: `mrm up`, `mrm demo`."""
