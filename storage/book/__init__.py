"""The book of business: staff, customers, families, policies, claims and circles from files."""
