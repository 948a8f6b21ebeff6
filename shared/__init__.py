"""The event contract and the small kit every MRM service uses (never imports ``services``)."""
