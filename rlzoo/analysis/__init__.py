"""Analysis of finished runs: statistics (:mod:`.stats`), reports (:mod:`.report`), plots
(:mod:`.plots`). Nothing is imported here, so the launcher can import :mod:`.stats` without
loading the report's or the plots' dependencies.
"""
