"""What steps are built from: files on a host, templates, the panel's config files, the wanted license."""
