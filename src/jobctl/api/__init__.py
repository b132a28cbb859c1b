"""What applications and front ends call: the Python API (client, handles, @job, @on), enqueue,
the reads every front end shows and the admin actions."""
