"""The shipping desk: carriers, e-waybills, labels, merged parcels, the packing check and the weigh."""
