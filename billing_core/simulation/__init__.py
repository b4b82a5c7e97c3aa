"""Recoup's world simulator: the world model a runner drives the billing core with.

Pure, vectorized (numpy arrays over many customers or attempts at once) and deterministic given a
seed. Every random number is keyed by stable identities (:mod:`.rng`), so two dunning policies can
be run on the same world with common random numbers. Every labelled outcome comes with the
probability it was drawn from (the ground truth, stored apart: :mod:`.truth`).

Modules (import the one you need; this package imports nothing heavy):

* :mod:`.rng`: counter-based random numbers keyed by (seed, stream, keys...);
* :mod:`.params`: :class:`~.params.WorldParams`, every default with its source, and scenarios;
* :mod:`.timeline`: day indexes, months and paydays;
* :mod:`.traits`, :mod:`.population`, :mod:`.cards`: signups, hidden traits, cards and identities;
* :mod:`.usage`: daily usage and engagement drift;
* :mod:`.network`: the card network (charge outcomes and decline codes);
* :mod:`.behaviour`: reminders, voluntary churn, invoices on net terms, disputes;
* :mod:`.disputes_text`: dispute messages in English, Spanish and German;
* :mod:`.fraud`: stolen cards, card testing, account takeover, friendly fraud;
* :mod:`.truth`: the ground-truth tables and their store;
* :mod:`.calibration`: a fast roll-forward that checks the world's aggregate rates.

See docs/simulator.md.
"""
