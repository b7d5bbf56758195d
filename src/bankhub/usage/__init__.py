"""Usage metrics for the dashboard's "at a glance": what is counted, the series, the charts.

* ``bankhub.usage.counters``: in-memory counts of API calls (and connect outcomes) per app, UTC
  hour, outcome class and route group; the app hook that counts each call.
* ``bankhub.usage.store``: the table the counts land in, flushed every few seconds and at
  shutdown as additive upserts, and purged after ``BANKHUB_USAGE_RETENTION_DAYS``.
* ``bankhub.usage.series``: time series over a UTC range, bucketed by hour or day, zero-filled.
* ``bankhub.usage.charts``: pure-Python SVG charts of a series, plus a data table alternative.

docs/usage.md says what each series means and where its numbers come from.
"""
