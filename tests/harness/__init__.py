"""Test machinery that the product does not ship: plug-ins and helpers the tests and benches install."""
