"""The `kb` command line: parsing and rendering only; the work happens in the library."""
