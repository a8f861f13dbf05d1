"""The sandbox: a stand-in VICIdial for the demo, the tests and the bench; never used by ``run``.

``mariadb`` (a private ``mariadbd`` with the binlog on), ``schema`` (VICIdial-shaped
tables), ``simulate`` (VICIdial's writes, split by what they simulate), ``receiver``
(a local HTTP endpoint that records requests) and ``demo`` (``vicidial-cdc demo``).
VICIdial facts come from :mod:`cdc.vicidial` and the product's modules, never restated
here. Only the CLI's demo command (lazily), the bench and the tests import this package.
"""
