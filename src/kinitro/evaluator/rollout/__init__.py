"""Rollout: the episode hot loop, the Ray worker that owns envs + agent, and the pool."""
