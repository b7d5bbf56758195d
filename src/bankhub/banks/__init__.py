"""Bank registries as data: institutions imported into the catalogue from a registry file.

``formats`` reads a registry (the xs2a-adapter CSV, bankhub's own JSON or YAML) into records and
refusals without touching the database; ``services`` stores the records in the ``banks`` table in
one unit of work and switches banks on and off for partners; ``live`` keeps each process's
catalogue in step with that table. See ``docs/banks.md``.
"""
