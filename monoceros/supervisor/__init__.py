"""The supervisor: a master process that forks workers, watches them and replaces them."""
