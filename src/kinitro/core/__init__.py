"""Shared infrastructure for every role: settings base, logging, errors, PostgreSQL.

Nothing here knows about any role. Keep imports light: the CLI imports parts of this
package at start-up.
"""
