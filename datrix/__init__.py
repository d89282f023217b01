"""Datrix: a data-quality platform built as an event-sourced streaming system.

The repository's top-level folders are installed as the subpackages of this one
(``datrix.aggregates``, ``datrix.streams``, ``datrix.runtime``, ``datrix.projections``,
``datrix.jobs``, ``datrix.gateway``, ``datrix.connectors``, ``datrix.schemas``); in a
checkout they are reached through the symlinks beside this file."""
