//! Pod networking: CNI (libcni behaviour) and network namespaces.
