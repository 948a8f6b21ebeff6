"""Planning: plans, campaigns, stages, budgets and KPI targets; publishes ``mrm.planning.v1``."""
