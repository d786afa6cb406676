"""Decisions: the cost model, candidate channels, the policy and the seller actions.

Training (decisions against an oracle) and serving (checkout, batch) both use this layer;
it depends on data only, never on models, training or serving.
"""
