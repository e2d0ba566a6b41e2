/* filled by tests/reference/objectives_reference.py */
