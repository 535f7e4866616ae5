#!/bin/bash
# ispmanager install.pkg -- ispagent's lab EMULATOR of the vendor's install.sh.
# Same options, checks, messages and exit codes as the real script as shared/ispmanager-facts.md
# describes it (sections 1, 2.3, 5, 7); installs an emulated /usr/local/mgr5 from the lab mirror.
# Served by agent/lab/mirror.py, which fills in the @@...@@ values.
MIRROR_URL="@@MIRROR_URL@@"
LICENSE_URL="@@LICENSE_URL@@"
INSTALL_SECONDS="@@INSTALL_SECONDS@@"
LICENSE_RETRY_DELAY="@@LICENSE_RETRY_DELAY@@"
REPO_RETRY_DELAY="@@REPO_RETRY_DELAY@@"
MGR=/usr/local/mgr5
EMU_STATE=/var/lib/ispmanager-emulator

Error() { echo "ERROR: $*"; }
Info() { echo "$*"; }

Usage() {
	cat <<USAGE
Usage: install.sh [options] [mgrname]
	--osfamily <REDHAT|DEBIAN>	force OS family when detection fails
	--osversion <VER>	force OS version when detection fails
	--release <type>	install non-interactively from this release (stable, beta)
	--noinstall	only add the repositories, install no packages
	--install-business	install ispmanager-business (RedHat family only)
	--ignore-hostname	skip the hostname check
	--silent	do not ask for a hostname or an activation key; exit on those errors
	--no-letsencrypt	do not request a Let's Encrypt certificate for the panel
	--le-domain <domain>	domain of the panel's certificate (or env LE_DOMAIN)
	--disable-fail2ban	do not install fail2ban
	--ispmgr5	install ispmanager 5
	--openlitespeed	install OpenLiteSpeed (ispmanager-lite only)
	--litespeed <SERIAL|TRIAL>	install LiteSpeed with this serial (xxxx-xxxx-xxxx-xxxx) or a trial
	--dbtype <mysql|sqlite>	panel database (default sqlite)
	--mysql-server <mysql|mariadb>	MySQL server (Ubuntu and EL 8-9 only)
	--allow-eol-os	install on an operating system at End of Support
	--activation-key <key>	activate the license with this key
mgrname: ispmanager-lite, ispmanager-lite-common, ispmanager-business, ispmanager, coremanager
USAGE
}

release="" silent="" ignore_hostname="" allow_eol="" dbtype="" mysql_server="" activation_key="${ACTIVATION_KEY:-}"
noinstall="" mgrname="" pkgname="" letsencrypt=yes le_domain="${LE_DOMAIN:-}" fail2ban=yes
while [ $# -gt 0 ]; do
	case "$1" in
		--help|-h) Usage; exit 0 ;;
		--osfamily) OSFAMILY=$2; shift ;;
		--osversion) OSVERSION=$2; shift ;;
		--release) release=$2; shift ;;
		--noinstall) noinstall=yes ;;
		--install-business) pkgname=ispmanager-business ;;
		--ignore-hostname) ignore_hostname=yes ;;
		--silent) silent=yes; ignore_hostname=yes; allow_eol=yes ;;
		--no-letsencrypt) letsencrypt="" ;;
		--le-domain) le_domain=$2; shift ;;
		--disable-fail2ban) fail2ban="" ;;
		--ispmgr5|--ispmgr6|--openlitespeed) ;;
		--litespeed) shift ;;
		--dbtype) dbtype=$2; shift ;;
		--mysql-server) mysql_server=$2; shift ;;
		--allow-eol-os) allow_eol=yes ;;
		--activation-key) activation_key=$2; shift ;;
		--mirror) [ -n "${MIRROR:-}" ] || { Error "Empty mirror"; exit 1; }; shift ;;
		-*) Usage; exit 1 ;;
		*) mgrname=$(echo "$1" | tr '[:upper:]' '[:lower:]') ;;
	esac
	shift
done

mkdir -p $EMU_STATE && echo "$(date -u +%FT%TZ) $$" >> $EMU_STATE/invocations

if [ "$(id -u)" != "0" ]; then Error "You must be root user to continue"; exit 1; fi

if [ -n "$dbtype" ] && [ "$dbtype" != mysql ] && [ "$dbtype" != sqlite ]; then Error "Incorrect database type"; exit 1; fi
if [ -n "$mysql_server" ] && [ "$mysql_server" != mysql ] && [ "$mysql_server" != mariadb ]; then
	Error "Incorrect mysql server"; exit 1
fi
case "$release" in
	""|stable|beta|beta5|beta6|stable5|stable6|intbeta|intstable|5.*|6.*) repo_host="" ;;
	*) repo_host="intrepo.download.ispmanager.com" ;;  # the real script's developer install
esac

# No terminal: every prompt ends the run with exit 1 and no prompt text (facts 7).
Ask() { [ -t 0 ] || exit 1; echo -n "$1"; read -r answer; }

# -- OS detection --
OSFAMILY=${OSFAMILY:-unknown}
if [ -f /etc/redhat-release ]; then
	OSFAMILY=REDHAT; . /etc/os-release; OSVERSION=${OSVERSION:-${VERSION_ID%%.*}}; OSNAME="centos-$OSVERSION"
elif [ -f /etc/os-release ]; then
	. /etc/os-release
	case "$ID" in debian|ubuntu) OSFAMILY=DEBIAN ;; esac
	OSVERSION=${OSVERSION:-$VERSION_CODENAME}; OSNAME="$ID-$OSVERSION"
fi
if [ "$OSFAMILY" = unknown ] || [ -z "$OSVERSION" ]; then Error "Unknown os version. Try to use \"--osversion\" option"; exit 1; fi
eol=""
case "$OSFAMILY:$OSVERSION" in
	REDHAT:8|REDHAT:9|DEBIAN:bullseye|DEBIAN:bookworm|DEBIAN:jammy|DEBIAN:noble) ;;
	REDHAT:6|REDHAT:7|DEBIAN:wheezy|DEBIAN:jessie|DEBIAN:stretch|DEBIAN:buster|DEBIAN:trusty|DEBIAN:xenial|DEBIAN:bionic|DEBIAN:focal) eol=yes ;;
	*) Error "Unsupported os version ($OSVERSION)"; exit 1 ;;
esac
if [ -n "$eol" ] && [ -z "$allow_eol" ]; then
	[ -t 0 ] || exit 1
	Info "Your operating system is at End of Support (EOL). See https://www.ispmanager.com/docs/ispmanager/support-stages#supported-os"
	Ask "Do you want to continue? (y/N) "
	[ "$answer" = y ] || exit 0
fi
if [ -n "$mysql_server" ] && [ "$OSFAMILY:$ID" = DEBIAN:debian ]; then Error "The '--mysql-server' option not supported on this OS"; exit 1; fi

if selinuxenabled > /dev/null 2>&1; then
	if [ -n "$release" ] || [ -n "$silent" ]; then Error "SELinux is enabled, aborting installation."; exit 1; fi
	Error "SELinux is enabled on your server. It is strongly recommended to disable SELinux before you proceed."
	Ask "Would you like to disable SELinux right now (yes/no)?"; exit 1
fi
if [ -d /usr/local/ispmgr ]; then Error "Old managers is installed"; exit 1; fi

# -- RAM (skipped with --silent) --
mem=0
while read -r key value unit; do [ "$key" = MemTotal: ] && mem=$((value / 1024)) && break; done < /proc/meminfo
minmem=512; [ "$OSFAMILY" = REDHAT ] && [ "$OSVERSION" -ge 8 ] 2>/dev/null && minmem=1536
if [ -z "$silent" ] && [ "$mem" -le "$minmem" ]; then Error "You have to low memory: $mem"; exit 1; fi
if [ "$mem" -le 1024 ]; then
	INSTALL_MINI=yes
	if [ "$dbtype" = mysql ]; then Error "Can't use MySQL to run the panel because too little RAM is available"; exit 1; fi
fi

# -- hostname (skipped with --ignore-hostname / --silent) --
if [ -z "$ignore_hostname" ] && [ ! -e /.dockerinit ]; then
	if [ "$OSFAMILY" = REDHAT ]; then hn=$(hostname); else hn=$(hostname -f 2>/dev/null); fi
	last=${hn##*.}
	if [ ${#hn} -lt 2 ] || [ ${#hn} -gt 50 ] || [ "${hn#*.}" = "$hn" ] || [ "${hn#*_}" != "$hn" ] || ! echo "$last" | grep -qE '^[A-Za-z0-9-]+$'; then
		Error "You have incorrect hostname: $hn"
		Ask "Enter new hostname(or Ctrl+C to exit): "; exit 1
	fi
fi

# -- package name --
[ -z "$pkgname" ] && case "$mgrname" in
	ispmanager-lite) pkgname=ispmanager-lite-common; recommended=yes ;;
	ispmanager-lite-common) pkgname=ispmanager-lite-common ;;
	ispmanager-business|ispmanager-pro) pkgname=ispmanager-business ;;
	coremanager) pkgname=coremanager ;;
	ispmanager|ispmanager-*|"") Ask "Choose the edition: "; exit 1 ;;
	*) Error "Incorrect package name"; exit 1 ;;
esac
if [ "$pkgname" = ispmanager-business ] && [ "$OSFAMILY" = DEBIAN ]; then
	Error "ispmanager Business is not supported on Debian-based systems."; exit 1
fi
[ -z "$release" ] && { Ask "Step 1. Select update branch: b/s "; exit 1; }
dbtype=${dbtype:-sqlite}

if [ -e $MGR/etc/emulator-packages ] && grep -qx "$pkgname" $MGR/etc/emulator-packages; then
	Error "You have already installed package $pkgname"
	Error "Do not use install.sh script for upgrading!"
	Error "Use \"/usr/local/mgr5/sbin/pkgupgrade.sh coremanager\" command instead"
	exit 1
fi

# -- repositories --
Fetch() { python3 - "$1" "$2" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=30) as r:
        data = r.read()
except Exception as error:
    sys.exit(f"{sys.argv[1]}: {error}")
open(sys.argv[2], "wb").write(data)
PY
}
repo="$MIRROR_URL/repo"
[ -n "$repo_host" ] && repo="http://$repo_host/repo"
mkdir -p /etc/apt/sources.list.d
echo "deb $repo/debian 6-${release/#stable/stable6}-$OSVERSION main" > /etc/apt/sources.list.d/exosoft.list
tries=0
until Fetch "$repo/" /dev/null 2>/dev/null; do
	tries=$((tries + 1))
	if [ $tries -ge 4 ]; then Error "Problems with repository. Please try again in an hour"; exit 1; fi
	Error "Some errors with repository"; sleep "$REPO_RETRY_DELAY"
done
[ -n "$noinstall" ] && { Info "Repositories added"; exit 0; }

Info "Installing coremanager"
tmp=$(mktemp)
if ! Fetch "$repo/ispmanager/mgr5.tar.gz" "$tmp" 2>/dev/null; then
	rm -f "$tmp"; Error "$pkgname was not found in repos for $OSNAME ( $(uname -m) )"; exit 1
fi
mkdir -p $MGR && tar -xzf "$tmp" -C $MGR && rm -f "$tmp"
mkdir -p $MGR/etc/ispmgr.conf.d $MGR/var/run
printf '{"license_url": "%s"}\n' "$LICENSE_URL" > $MGR/etc/emulator.json
sleep "$(echo "$INSTALL_SECONDS" | awk '{print $1 / 2}')"
$MGR/sbin/mgrctl exit >/dev/null 2>&1
touch $MGR/var/new_license

# -- license (3 tries, 2 s apart) --
tries=0
until $MGR/sbin/licctl fetch ispmgr $activation_key >/dev/null 2>&1; do
	tries=$((tries + 1))
	if [ $tries -ge 3 ]; then
		tail -n 5 $MGR/var/licctl.log 2>/dev/null
		if [ -n "$activation_key" ]; then
			Error "Invalid activation key"
		else
			Error "Trial license for this IP has expired"
			Error "You have no commercial license for $pkgname or it can't be activated automatically"
			Info "See https://docs.ispmanager.com/coremanager/types-of-licenses"
			[ -n "$silent" ] && exit 1
			Ask "Please enter activation key or press Enter to exit: "
		fi
		exit 1
	fi
	sleep "$LICENSE_RETRY_DELAY"
done
echo "manager ispmgr" >> $MGR/etc/mgrlist.conf

Info "Installing $pkgname"
sleep "$(echo "$INSTALL_SECONDS" | awk '{print $1 / 2}')"
echo "$pkgname" >> $MGR/etc/emulator-packages
echo "${release%%[0-9]*}" > $MGR/etc/repo.version
[ "$dbtype" = sqlite ] && : > $MGR/etc/ispmgr.conf.d/db.conf
printf 'Api https://api.ispmanager.com/billmgr\nLicense license.ispmanager.com\nSite https://my.ispmanager.com/billmgr\n' > $MGR/etc/billing.settings
[ -n "$fail2ban" ] && echo coremanager-pkg-fail2ban >> $MGR/etc/emulator-packages
[ -n "$recommended" ] && Info "Installing recommended software (nginx${INSTALL_MINI:+, mini})"
$MGR/sbin/mgrctl -m core exit >/dev/null 2>&1

ip=$(echo "${SSH_CONNECTION:-}" | cut -d' ' -f3)
[ -n "$ip" ] || ip=$(hostname -I 2>/dev/null | cut -d' ' -f1)
Info "Your newly installed ispmanager panel is available at:"
Info "  https://$ip:1500/ispmgr"
Info "Login: root"
Info "Password: <root password>"
exit 0
