from __future__ import annotations

import aiohttp

from service.emulators import SYSTEMS, EmulatorCluster

from .conftest import BILLBEE_AUTH, KEYCOM_AUTH, SEDONA_AUTH, TIMELOG_AUTH


async def test_cluster_serves_the_demo_customers() -> None:
    async with EmulatorCluster() as cluster, aiohttp.ClientSession() as http:
        assert sorted(cluster.urls) == sorted(SYSTEMS)
        checks = [
            ("timelog", "/demo/api/v1/customer/3001", TIMELOG_AUTH),
            ("billbee", "/api/v1/customers/1002", BILLBEE_AUTH),
            ("sedona", "/api/customer/2001", SEDONA_AUTH),
            ("keycom", "/customers/4002/", KEYCOM_AUTH),
        ]
        for system, path, headers in checks:
            async with http.get(cluster.urls[system] + path, headers=headers) as resp:
                assert resp.status == 200, system
