"""Intent-engine helpers: text normalisation, Chinese time parsing and entity extraction."""
