"""A module that fails to import: the scan reports it and goes on."""

raise ImportError("scan_pkg.broken needs a package that is not installed")
