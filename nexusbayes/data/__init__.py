"""The data contract: reading indicator tables, validating them into panels, public data sets.

See :class:`~nexusbayes.data.panel.Panel`.
"""
