"""Text-to-SQL over an EHR database, with abstention (EHRSQL 2024)."""
