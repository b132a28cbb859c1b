"""What a job is: the catalogue of registered and declared jobs, and their signatures."""
