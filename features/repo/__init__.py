"""Recoup's Feast repository: one kind of object per module.

``entities``, ``data_sources``, ``feature_views``, ``on_demand_feature_views`` and
``feature_services`` define the objects; ``objects`` gathers them for the ``feast`` command line
(see ``.feastignore``); ``feature_store.yaml`` and ``feature_store.redis.yaml`` are the Feast
configurations (``features.config`` fills in their variables). Importing these modules imports
feast.
"""
