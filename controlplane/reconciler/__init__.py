"""Level-based loops that converge stored state, one per concern: pending placements
(``pending``), host liveness and evacuation (``liveness``), drains (``drain``) and Cloud
Open Lab expiry (``lab``); ``loop`` is the shared periodic thread."""
