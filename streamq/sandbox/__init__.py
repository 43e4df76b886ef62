"""The local sandbox: moto's server plus a poller that emulates the stream trigger."""
