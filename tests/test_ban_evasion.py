"""Guesses spread over many addresses (issue 11, item 6): a network is scored as a whole,
and an account guessed at from everywhere is slowed down and reported, while its member
still logs in with the right password.

Sources are other loopback addresses: 127.0.N.x is network N for the /24 rules."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import paramiko

from tests.clients import SftpClient
from tests.conftest import PASSWORD, TestInstance, running, wait_for


def configure(instance: TestInstance, limits: str) -> None:
    instance.config_file.write_text(
        f'[sftp]\nlisten = "127.0.0.1:0"\n[ftps]\nlisten = ""\n[limits]\n{limits}\n'
    )


def guess(source: str, address: tuple[str, int], user: str, password: str) -> bool:
    """One password attempt from ``source``; True if it logged in."""
    sock = socket.create_connection(address, timeout=60, source_address=(source, 0))
    transport = paramiko.Transport(sock)
    transport.banner_timeout = 60
    try:
        transport.connect(username=user, password=password)
        return True
    except (paramiko.SSHException, OSError, EOFError):
        return False
    finally:
        transport.close()


class TestNetworkScore:
    def test_guesses_from_40_addresses_of_one_network_ban_the_network(
        self, instance: TestInstance
    ) -> None:
        """One wrong password from each of 40 addresses of one /24 bans the /24 (audited
        once, naming it); any address in it is then refused, other networks are not."""
        configure(
            instance,
            "max_login_failures = 5\nmax_network_failures = 30\n"
            "account_attack_failures = 1000\nban_time = 600",
        )
        instance.add_account("mairie-a")
        with running(instance) as server:
            for host in range(1, 41):
                guess(f"127.0.5.{host}", server.sftp, "mairie-a", "guess")
            [ban] = wait_for(lambda: instance.audit("banned"))
            assert "127.0.5.0/24" == ban["ip"]
            sock = socket.create_connection(
                server.sftp, timeout=10, source_address=("127.0.5.99", 0)
            )
            assert b"" == sock.recv(100)  # closed before the SSH banner
            sock.close()
            assert guess("127.0.6.1", server.sftp, "mairie-a", PASSWORD)
            client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
            client.upload("/still-served.bak", b"ok")
            client.close()


class TestAccountScore:
    def test_an_account_guessed_from_40_networks_is_slowed_and_reported(
        self, instance: TestInstance
    ) -> None:
        """40 wrong passwords at one account from 40 networks: ``account.attacked`` is
        audited once, later attempts at that account wait, no address is banned, and the
        member's right password still logs in."""
        configure(
            instance,
            "max_login_failures = 5\nmax_network_failures = 30\n"
            "account_attack_failures = 20\naccount_attack_delay = 2",
        )
        instance.add_account("mairie-a")
        instance.add_account("mairie-b")
        with running(instance) as server:
            sources = [f"127.0.{100 + n}.1" for n in range(1, 41)]
            with ThreadPoolExecutor(8) as pool:
                results = list(
                    pool.map(lambda s: guess(s, server.sftp, "mairie-a", "guess"), sources)
                )
            assert not any(results)
            [alarm] = wait_for(lambda: instance.audit("account.attacked"))
            assert "mairie-a" == alarm["account"]
            assert [] == instance.audit("banned")
            started = time.monotonic()
            assert not guess("127.0.150.1", server.sftp, "mairie-a", "guess")
            assert time.monotonic() - started >= 2
            assert guess("127.0.0.1", server.sftp, "mairie-a", PASSWORD)
            client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
            client.upload("/not-locked-out.bak", b"ok")
            client.close()
            assert 1 == len(instance.audit("account.attacked"))
            # Another account is served as usual.
            assert not guess("127.0.151.1", server.sftp, "mairie-b", "guess")
            assert guess("127.0.151.1", server.sftp, "mairie-b", PASSWORD)
