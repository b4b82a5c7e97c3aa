"""Recoup's feature store: feature tables computed from the lake, served through Feast.

* ``features.jobs``: DuckDB jobs that compute the feature tables from the lake, point in time;
* ``features.repo``: the Feast repository (entities, data sources, feature views, on-demand
  views, feature services ``dunning_v1``, ``churn_v1``, ``fraud_v1``, ``disputes_v1``);
* ``features.config``: settings and the selected Feast configuration (SQLite or Redis online);
* ``features.asof_offline_store``: Feast's DuckDB offline store with ASOF point-in-time joins;
* ``features.store``: apply and incremental materialization;
* ``features.training``: entity rows, training sets and online features through a service;
* ``features.push``: the outbox consumer that pushes real-time counters online.

Importing this package imports nothing; feast, DuckDB and pyarrow are imported by the modules that
use them. See docs/features.md.
"""
