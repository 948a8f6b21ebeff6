"""The execution service: conducts campaigns — stage statuses and deadlines, spend against plan."""
