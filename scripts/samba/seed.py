"""Seed the demo company into a freshly provisioned (stopped) Samba DC.

Usage: seed.py SMB_CONF PEOPLE_TSV PASSWORD
PEOPLE_TSV lines: employeeId login email first last department privileged(true|false)
Users: CN "First Last" (plus the employee id when a name repeats) in CN=Users,
sAMAccountName = login, userPrincipalName = mail = email, employeeID set.
Groups: sandbox/demo's groups; everyone in all-staff and their department,
privileged people also in admins.
"""
import sys

import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

GROUPS = ["all-staff", "engineering", "sales", "finance", "support", "admins"]

conf, people_path, password = sys.argv[1:4]
lp = LoadParm()
lp.load(conf)
samdb = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
base = str(samdb.domain_dn())

for g in GROUPS:
    samdb.newgroup(g, description="Offboard demo group " + g)

members = {g: [] for g in GROUPS}
seen = set()
with open(people_path) as f:
    for line in f:
        line = line.rstrip("\n")
        if not line:
            continue
        emp, login, email, first, last, dept, priv = line.split("\t")
        cn = first + " " + last
        if cn in seen:
            cn += " " + emp
        seen.add(cn)
        dn = "CN=%s,CN=Users,%s" % (cn, base)
        samdb.add({
            "dn": dn,
            "objectClass": "user",
            "sAMAccountName": login,
            "userPrincipalName": email,
            "mail": email,
            "givenName": first,
            "sn": last,
            "displayName": first + " " + last,
            "employeeID": emp,
            "department": dept,
        })
        samdb.setpassword("(sAMAccountName=%s)" % ldb.binary_encode(login), password,
                          force_change_at_next_login=False, username=login)
        members["all-staff"].append(login)
        members[dept].append(login)
        if priv == "true":
            members["admins"].append(login)
        print("user", dn)

for g, logins in members.items():
    if logins:
        samdb.add_remove_group_members(g, logins, add_members_operation=True)
        print("group", g, len(logins))
