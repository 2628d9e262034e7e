"""Makes moto's Route 53 refuse a CREATE only when that very record set exists, as Route 53 does.

Python imports this file at start-up because tests/it/common/acme.rs starts `moto_server` with
this directory on PYTHONPATH.

moto 5 refuses a CREATE identical to one in its change journal whenever any record set sorts at
or after its name: its check lists the zone from that name onward instead of looking up the name
alone. (Its DELETE, too, checked only that such a set was once created, not that the values
still match, so a batch built from a stale read went through.) An appliance resuming an interrupted ACME order writes the same `_acme-challenge` value
again, and moto refused it whenever the other name's set (`_acme-challenge.www.…`) was there:
tls_acme::a_failed_or_interrupted_order_leaves_no_txt_record_behind failed in about one run in
four, depending on the order pebble listed the authorizations in.
"""

from moto.route53 import exceptions, models

_change_resource_record_sets = models.Route53Backend.change_resource_record_sets


def _name(record_set):
    return record_set["Name"].rstrip(".").lower()


def _values(record_set):
    return sorted(r["Value"] if isinstance(r, dict) else r for r in record_set.get("ResourceRecords", []))


def change_resource_record_sets(self, zoneid, change_list):
    """Checks the batch against the zone as Route 53 does, all of it before any change."""
    zone = self.get_hosted_zone(zoneid)
    present = {
        (_name({"Name": r.name}), r.type): (str(r.ttl), _values({"ResourceRecords": r.records}))
        for r in zone.rrsets
    }
    for change in change_list:
        record_set = change["ResourceRecordSet"]
        key = (_name(record_set), record_set["Type"])
        if change["Action"] == "DELETE":
            wanted = (str(record_set.get("TTL")), _values(record_set))
            if present.get(key) != wanted:
                raise exceptions.Route53ClientError(
                    "InvalidChangeBatch",
                    f"Tried to delete resource record set [name='{record_set['Name']}', "
                    f"type='{record_set['Type']}'] but the values provided do not match the "
                    "current values"
                )
            del present[key]
        elif change["Action"] == "CREATE":
            if key in present:
                raise models.ResourceRecordAlreadyExists(
                    name=record_set["Name"], _type=record_set["Type"]
                )
            present[key] = (str(record_set.get("TTL")), _values(record_set))
    return _change_resource_record_sets(self, zoneid, change_list)


def _never_in_journal(_journal, _change):
    # Only moto's faulty "already exists" check asks the journal this; the check above replaces it.
    return False


models.Route53Backend.change_resource_record_sets = change_resource_record_sets
models.ChangeList.__contains__ = _never_in_journal
