"""Thin adapters from the core to other toolkits, installed as ``atom_plugin.integrations``.

* ``atom_plugin.integrations.avalanche`` -- condensed replay buffers for Avalanche (extra ``[avalanche]``)
* ``atom_plugin.integrations.nni`` -- condensed proxy datasets for NNI trials and searches (extra ``[nni]``)

The core (``atom_plugin``) never imports these toolkits; each adapter imports its toolkit lazily and says
how to install it when it is missing.
"""
